"""Understanding a message: bytes to a parsed message, and a composed message to bytes."""
