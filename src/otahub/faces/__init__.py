"""The faces: each translates one wire protocol to service calls and back."""
