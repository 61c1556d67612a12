"""The switch: registrar, B2BUA, store, control API, server lifecycle."""
