"""The reference device agent: real device code to start from, and the fleet simulator's
building block."""
