"""One connection to one database: opened, bounded, watched, interruptible."""
