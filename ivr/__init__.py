"""IVR menus and voicemail (applications on the Call API)."""
