"""Message sources beyond the JSONL feed: a Matrix account (and the chats bridged into it).

A connector runs on the glasses: it keeps its account's token and sync position sealed in the wearer's store
(`ledger`), stores each message it receives before it is shown, and sends only replies the wearer confirmed, after
the egress gate let them through.
"""
