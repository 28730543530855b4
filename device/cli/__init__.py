"""`glassmate`: the command line of the glasses runtime, one module per command group.

The lab's commands (`eval`, `bench`, `bench-ask`), the build tools (`quantize`) and training (`adapters`, `fl`)
are plugins registered under the `glassmate.commands` entry point: the runtime never imports them, and a missing
extra is named when its command is called.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points

import typer

from device.cli import ask, chat, chats, connect, glasses, imports, models, privacy
from device.cli.common import fail

app = typer.Typer(help="glassmate: an on-device messaging assistant for smart glasses.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(models.app, name="models")
app.add_typer(privacy.app, name="privacy")
app.add_typer(ask.index_app, name="index")
app.add_typer(chats.app, name="chats")
app.add_typer(connect.app, name="connect")
app.add_typer(imports.app, name="import")  # `import` is a Python keyword: the module is imports
for command in (chat.summarize, chat.reply, chat.demo, glasses.hud, ask.ask):
    app.command()(command)


def _plugin_extra(ep: EntryPoint) -> str:
    """The extra that installs a plugin's dependencies, as its entry point declares it (`module:attr [extra]`)."""
    return ep.extras[0] if ep.extras else ep.name


def _load_plugins() -> None:
    """Command groups (a Typer app) and single commands (a function) that other packages of the distribution
    register; each is imported only here, and one whose extra is not installed says which extra to install."""
    for ep in entry_points(group="glassmate.commands"):
        try:
            plugin = ep.load()
        except ImportError as exc:
            missing, extra = exc.name or str(exc), _plugin_extra(ep)

            def unavailable(_missing: str = missing, _name: str = ep.name, _extra: str = extra) -> None:
                raise fail(f"`glassmate {_name}` needs {_missing}: pip install 'glassmate[{_extra}]'")
            app.command(ep.name, help=f"(needs the '{extra}' extra)")(unavailable)
            continue
        if isinstance(plugin, typer.Typer):
            app.add_typer(plugin, name=ep.name)
        else:
            app.command(ep.name)(plugin)


_load_plugins()


def main() -> None:  # pragma: no cover - console entry for `python -m device.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
