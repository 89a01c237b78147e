"""Everything jobs asks of the Dramatiq broker beyond `actor.send()`.

introspection.py  ping, queue depths, what an outage looks like (Redis, RabbitMQ, stub)
bulk_send.py      many messages in one round trip: the one adapter that knows Dramatiq's
                  Redis internals, pinned by a contract test
"""
