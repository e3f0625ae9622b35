"""Running a district's cameras from the hub: each camera's config with versions and an audit, pushed to
its agent over the ingest link (signed by the hub) and answered; snapshots on demand; fleet health."""
