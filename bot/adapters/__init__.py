"""Front ends: each translates platform events to `Inbound` and `Reply`/`Post` to platform calls."""
