from tests.messaging.fixtures import eager, frozen, sink, smtp_sink, world

__all__ = ["eager", "frozen", "sink", "smtp_sink", "world"]
