"""Small dialogs: sync settings, role change, test communication, reserved capacity."""
