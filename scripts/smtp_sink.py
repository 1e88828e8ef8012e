"""A loopback SMTP server for tests, on aiosmtpd (installed by scripts/services).

Every message it accepts is written to DIR as one JSON file (envelope, the headers a test
checks, the subject and the plain-text body decoded as a mail client would show them), so a
test in any language reads what arrived without a MIME parser of its own. Listens on a port
the OS picks and prints `port=N` once it does.

Usage: smtp_sink.py HOST DIR
"""

import asyncio
import email
import email.policy
import itertools
import json
import os
import sys
import time

from aiosmtpd.smtp import SMTP

# Larger messages are refused (552): notifications are a few KiB.
MAX_MESSAGE_BYTES = 1024 * 1024


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["from"]),
            "to": str(message["to"]),
            "subject": str(message["subject"]),
            "message_id": str(message["message-id"]),
            "xiezhi_message_id": str(message["xiezhi-message-id"]),
            "content_type": message.get_content_type(),
            "body": body.get_content() if body is not None else None,
        }
        name = f"{time.time_ns()}-{os.getpid()}-{next(self.counter)}.json"
        temporary = os.path.join(self.directory, "." + name)
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(record, out, ensure_ascii=False)
        # Renamed into place so a reader never sees half a file.
        os.rename(temporary, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


async def main(host, directory):
    os.makedirs(directory, exist_ok=True)
    loop = asyncio.get_running_loop()
    handler = Sink(directory)
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True, timeout=60), host, 0
    )
    print(f"port={server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: smtp_sink.py HOST DIR")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
