"""Runs moto server on loopback for the local stack and the tests.

Usage: python infra/moto_server.py [PORT]   (0 or nothing: any free port)

Prints `ready <port>` once it accepts connections, then serves until its parent process
exits (checked twice a second), so a test run that dies never leaves an emulator behind.
SIGTERM/SIGINT stop it too.

DynamoDB requests are handled one at a time. DynamoDB applies each conditional write and
each transaction atomically; moto does not lock its tables between request threads, so two
concurrent transactions could both pass the same condition. Serializing DynamoDB requests
restores the isolation DynamoDB guarantees, so the race tests exercise our conditions
rather than the emulator's own races. Other services (SQS long polls above all) are not
serialized. Connections stay keep-alive (the server is threaded).

Transactions: moto backs up a whole table (a deep copy, once per item of the transaction)
before every TransactWriteItems, which makes each transaction slower as the table grows
(minutes for a thousand sends into a table the whole test suite shares). Since DynamoDB
requests are serialized here, only the items a transaction names need a backup: they are
copied before it runs and put back if it is cancelled, with the same outcome.

Queries: moto answers every Query by sorting all the items of the table (`all_items`), then
keeping those of the partition asked for and sorting them again by the key the query reads
(the index's or the table's, with the table's key after it: a total order). The first sort
is wasted work that grows with the table (seconds per query at 50,000 items, which a list
of 10,000 conversations in `make bench` reaches); during a Query the items are handed over
unsorted, with the same answer.

Conditional copies: S3 refuses a CopyObject with `If-None-Match: *` whose destination
exists (412); moto checks that header on PutObject only, so it is checked here for copies
too.
"""

import os
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def serialized(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            # Consume the body inside the lock: the work happens while iterating.
            return list(app(environ, start_response))

    return handle


def item_backups_for_transactions():
    """Replaces moto's whole-table transaction backup with a backup of the named items."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class NoTableCopy:
        @staticmethod
        def deepcopy(value, memo=None):
            # Tables are restored item by item below; anything else is copied as before.
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    original = models.DynamoDBBackend.transact_write_items

    def key_of(table, op):
        source = op.get("Key") or op.get("Item") or {}
        hash_value = source.get(table.hash_key_attr)
        if hash_value is None:
            return None
        range_value = source.get(table.range_key_attr) if table.range_key_attr else None
        return DynamoType(hash_value), DynamoType(range_value) if range_value else None

    def stored(table, hash_key, range_key):
        bucket = table.items.get(hash_key)
        if bucket is None:
            return None
        return bucket.get(range_key) if range_key is not None else bucket

    def restore(table, hash_key, range_key, item):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
            return
        bucket = table.items[hash_key]
        if item is None:
            bucket.pop(range_key, None)
            if not bucket:
                table.items.pop(hash_key, None)
        else:
            bucket[range_key] = item

    def transact_write_items(self, transact_items):
        backups = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            key = key_of(table, op) if table is not None else None
            if key is not None:
                backups.append((table, *key, copy.deepcopy(stored(table, *key))))
        models.copy = NoTableCopy
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(backups):
                restore(table, hash_key, range_key, item)
            raise
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


def unsorted_query_candidates():
    """Spares Query moto's sort of the whole table: its own sort of the partition decides."""
    from moto.dynamodb.models.table import Table

    original = Table.query

    def unsorted(table):
        if table.range_key_attr:
            return [item for bucket in table.items.values() for item in bucket.values()]
        return list(table.items.values())

    def query(self, *args, **kwargs):
        # DynamoDB requests are serialized (see `serialized`): no other request sees this.
        self.all_items = lambda: unsorted(self)
        try:
            return original(self, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query


def conditional_copies():
    """Makes CopyObject honour `If-None-Match: *` on its destination, as S3 does."""
    from moto.s3.exceptions import PreconditionFailed
    from moto.s3.responses import S3Response

    original = S3Response.copy_object

    def copy_object(self):
        if self.headers.get("If-None-Match") == "*" and (
            self.backend.get_object(self.bucket_name, self.parse_key_name()) is not None
        ):
            raise PreconditionFailed("If-None-Match")
        return original(self)

    S3Response.copy_object = copy_object


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    parent = os.getppid()
    item_backups_for_transactions()
    unsorted_query_candidates()
    conditional_copies()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", port, serialized(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"ready {server.server_port}", flush=True)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop and os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()


if __name__ == "__main__":
    main()
