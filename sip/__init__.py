"""SIP protocol library (RFC 3261 and friends). Sans-I/O at its heart; knows nothing of the PBX."""
