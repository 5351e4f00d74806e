"""Settings an admin changes on the Settings page, stored in the database, applied without a restart."""
