"""The Telegram bot: run presets from a phone, for the chats an admin allowed."""
