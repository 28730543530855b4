"""Chat exports from WhatsApp, Telegram Desktop and Signal (signal-export), read into glassmate Messages.

Each parser reads the whole export and returns a `ChatExport` or raises `FeedError` saying `file:line: what is
wrong`; nothing is returned half-parsed, so an import either stores every message of a file or none.

WhatsApp's `.txt` export is parsed here rather than with the well-known `whatstk`: that library pulls pandas,
plotly and seaborn onto the glasses for what is a line-oriented format, and it reports a bad line without its
line number, which is the one thing a wearer needs to fix a damaged export.

Export times are local wall-clock times (WhatsApp, Signal, Telegram's `date`): they are read in a zone the caller
names (default: this machine's) so every stored message carries an aware time.
"""

from device.messages.exports.common import ChatExport, Skip, Source, local_zone, zone
from device.messages.exports.signal import parse_signal
from device.messages.exports.telegram import parse_telegram
from device.messages.exports.whatsapp import parse_whatsapp, whatsapp_chat_name

__all__ = ["ChatExport", "Skip", "Source", "local_zone", "parse_signal", "parse_telegram", "parse_whatsapp",
           "whatsapp_chat_name", "zone"]
