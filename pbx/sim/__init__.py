"""The PSTN simulator (issue 12): a SIP provider on loopback for tests and users."""
