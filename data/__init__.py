"""The corpora bundled with minroots (installed as ``minroots.corpora``); see README.md here."""
