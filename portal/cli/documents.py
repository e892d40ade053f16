"""`flask documents …`: render pending documents, verify stored files."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from portal.cli._queue import queue_option
from portal.domain.actors import Actor
from portal.extensions import db

group = AppGroup("documents", help="Rendered documents: render pending ones, verify stored files.")


@group.command("render")
@click.option("--pending", "pending_only", is_flag=True,
              help="Render every issued invoice, credit note, agreement and reminder without a stored document.")
@click.argument("kind", required=False)
@click.argument("owner_id", required=False, type=int)
@queue_option
def render_cmd(pending_only: bool, kind: str | None, owner_id: int | None, queued: bool):
    """Render documents: `--pending`, or one by KIND and OWNER_ID (e.g. `invoice 123`).
    With --queue, each document becomes a background job."""
    from portal.documents import DocumentError, pending, render_document

    if queued:
        from portal.jobs import enqueue

        targets = pending(db.session) if pending_only else [(kind, owner_id)]
        if not pending_only and (not kind or owner_id is None):
            raise click.UsageError("give --pending, or KIND and OWNER_ID")
        actor = Actor.system("cli: documents render")
        for doc_kind, oid in targets:
            enqueue("render_document", {"document_kind": getattr(doc_kind, "value", doc_kind), "owner_id": oid},
                    actor=actor)
        click.echo(f"Queued {len(targets)} rendering jobs.")
        return

    if not pending_only:
        if not kind or owner_id is None:
            raise click.UsageError("give --pending, or KIND and OWNER_ID")
        try:
            doc = render_document(db.session, kind, owner_id)
        except DocumentError as exc:
            raise click.ClickException(str(exc)) from exc
        db.session.commit()
        click.echo(f"{doc.kind.value} {owner_id}: {doc.storage_key} ({doc.size} bytes, sha256 {doc.sha256[:12]}…)")
        return

    todo = pending(db.session)
    failed: list[str] = []
    with click.progressbar(todo, label=f"Rendering {len(todo)} documents", show_pos=True) as bar:
        for n, (doc_kind, oid) in enumerate(bar, 1):
            try:
                render_document(db.session, doc_kind, oid)
            except DocumentError as exc:
                db.session.rollback()
                failed.append(f"{doc_kind.value} {oid}: {exc}")
                continue
            # Commit as we go: an interrupted run keeps what it rendered.
            if n % 20 == 0:
                db.session.commit()
    db.session.commit()
    click.echo(f"Rendered {len(todo) - len(failed)} documents.")
    for line in failed:
        click.echo(f"FAILED {line}", err=True)
    if failed:
        sys.exit(1)


@group.command("verify")
def verify_cmd():
    """Re-hash every stored file; list changed and missing ones (exit 1 if any)."""
    from portal.documents import verify

    checked = 0
    problems = 0
    for doc, problem in verify(db.session):
        checked += 1
        if problem:
            problems += 1
            click.echo(f"{problem.upper()}: document {doc.id} ({doc.kind.value} {doc.owner_type} {doc.owner_id} v{doc.version}) {doc.storage_key}")
    click.echo(f"Checked {checked} stored documents: {problems} problem(s).")
    if problems:
        sys.exit(1)
