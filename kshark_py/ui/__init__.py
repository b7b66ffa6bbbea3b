"""Floor 4: Qt windows, dialogs, panels. Everything here talks to the model through its API."""
