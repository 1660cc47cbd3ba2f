"""``modelops ledger ...``: the audit ledger's own maintenance."""

from __future__ import annotations

import typer

from modelops.cli.state import STATE

app = typer.Typer(help="The audit ledger: keys and anchors.", no_args_is_help=True)


@app.command("enable-hmac")
def enable_hmac() -> None:
    """Key the hash chain with MODELOPS_LEDGER_KEY from the next entry on.

    For a ledger started without a key: earlier entries stay plain SHA-256 and are covered by
    the first keyed entry. Keep the printed anchor outside the database.
    """
    from modelops.services import promote

    first = promote.enable_hmac(STATE.settings)
    typer.secho(f"ledger keyed with HMAC-SHA256 from entry {first} on", fg=typer.colors.GREEN)
    typer.echo(f"anchor now: {promote.anchor(STATE.settings)}")


@app.command("anchor")
def anchor() -> None:
    """Print the ledger's head (<seq>:<hash>) to keep where the database's writers cannot."""
    from modelops.services import promote

    typer.echo(promote.anchor(STATE.settings))


@app.command("release-key")
def release_key() -> None:
    """Print the public release key (64 hex digits) prediction services verify releases with.

    Derived from the ledger key; not a secret. Give it to a service as
    MODELOPS_SERVING_RELEASE_PUBLIC_KEY (the model-service chart's releaseKey value).
    """
    from modelops.core.release_record import key_id
    from modelops.services import signing

    public = signing.public_key(STATE.settings)
    typer.echo(public)
    typer.echo(f"key id {key_id(public)}", err=True)
