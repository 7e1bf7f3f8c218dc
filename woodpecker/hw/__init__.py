"""Hardware profiles: one reviewed data file per device in hw_profiles/, loaded into HardwareProfile."""
