"""Chat: messages, replies, swipes and message actions; characters, personas and world books."""
