"""``flask privacy purge-expired [--dry-run]``: the retention run by hand."""

from __future__ import annotations

import click
from flask.cli import AppGroup

privacy_cli = AppGroup("privacy", help="Privacy operations: retention.")


@privacy_cli.command("purge-expired")
@click.option("--dry-run", is_flag=True, help="Only count what is due; change nothing.")
def purge_expired_command(dry_run: bool) -> None:
    """Delete closed requests older than RETENTION_DAYS, with their documents (audited)."""
    from booking.privacy.services import purge_expired

    result = purge_expired(dry_run=dry_run)
    if not result.enabled:
        click.echo("Retention is off (RETENTION_DAYS is 0): nothing purged.")
        return
    counts = result.counts
    verb = "Due" if dry_run else "Purged"
    click.echo(
        f"{verb} (closed, last changed before {result.cutoff:%Y-%m-%d %H:%M} UTC): "
        f"{counts.requests} requests, {counts.documents} documents, {counts.emails} emails."
    )
    if dry_run:
        for reference in result.references:
            click.echo(f"  {reference}")
    else:
        click.echo(f"Files removed: {result.files_removed}.")
    if result.files_pending:
        click.echo(f"Files still waiting to be removed (retried daily): {result.files_pending}.")
