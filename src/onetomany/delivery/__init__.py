"""The delivery layer: the channel contract, composing a row into a message, MIME, SMS
segments, retries and the dispatcher, the only code that makes anything leave the process."""
