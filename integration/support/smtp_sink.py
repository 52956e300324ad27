"""A real SMTP server for the notification tests: aiosmtpd on 127.0.0.1:<port>.

Each accepted message is appended to a JSON Lines file *before* the server answers 250 (so a
message the client saw accepted is always on record), with the receipt time in Unix
milliseconds, the envelope, the headers the tests count by (X-Sloguard-Key, Message-ID,
In-Reply-To) and the text and HTML parts. Prints "ready" once listening; stops on SIGTERM or
SIGINT. Tests stop and restart it on the same port to simulate an outage.

Usage: python3 smtp_sink.py PORT OUT.jsonl
"""

import asyncio
import email
import email.policy
import json
import signal
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        received_ms = int(time.time() * 1000)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {"text/plain": None, "text/html": None}
        for part in message.walk():
            if part.get_content_type() in parts and parts[part.get_content_type()] is None:
                parts[part.get_content_type()] = part.get_content()
        record = {
            "received_ms": received_ms,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["Subject"] or ""),
            "key": str(message["X-Sloguard-Key"] or ""),
            "message_id": str(message["Message-ID"] or ""),
            "in_reply_to": str(message["In-Reply-To"] or ""),
            "text": parts["text/plain"],
            "html": parts["text/html"],
        }
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
            out.flush()
        return "250 OK"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(path), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
