"""Pure protocol logic: no request, no ``g``, no storage."""
