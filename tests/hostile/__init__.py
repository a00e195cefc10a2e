"""The hostile-input suite: every patient and staff form and URL under attack."""
