"""``modelops ledger ...``: the audit ledger's own maintenance."""

from __future__ import annotations

from typing import Annotated

import typer

from modelops.cli.state import STATE

app = typer.Typer(
    help="The audit ledger: keys, anchors and the images of signed releases.",
    no_args_is_help=True,
)


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


@app.command("record-image")
def record_image(
    project: Annotated[str, typer.Argument(help="Project name.")],
    version: Annotated[str, typer.Argument(help="Model version whose signed release was pushed.")],
    image: Annotated[
        str,
        typer.Option(
            "--image",
            help="The pushed image by tag and digest: repository:tag@sha256:<64 hex> (what the "
            "registry answered to the push; the name cosign signs).",
        ),
    ],
    actor: Annotated[str | None, typer.Option(help="Who records it (default: you).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Record the digest an image of a signed release was pushed with.

    The tag must be the Bento tag of a release 'modelops package' signed and recorded for the
    version, and the repository the platform's (image_registry). 'modelops deploy' then pins
    image.digest, and 'modelops history --verify' reports a values file whose digest differs.
    """
    import json

    from modelops.services import release_ledger
    from modelops.services.identity import resolve_actor

    who = resolve_actor(actor, STATE.settings.root)
    record, entry, new = release_ledger.record_image(STATE.settings, project, version, image, who)
    if as_json:
        doc = {**record.model_dump(mode="json"), "ledger_entry": entry.seq, "recorded": new}
        typer.echo(json.dumps(doc, indent=2))
        return
    if new:
        typer.secho(f"recorded {record.reference} (ledger entry {entry.seq})", fg="green")
    else:
        typer.echo(f"already recorded: {record.reference} (ledger entry {entry.seq})")
