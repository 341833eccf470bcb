"""`sheetsync snapshots ...` (list, show, diff, verify, label, export, import, restore, forget,
prune, keygen) and `sheetsync archive LAYOUT`: the backup side of the CLI, added by cli/__init__.py in one call."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from .. import backup
from ..backup.runner import backup_dir_for, key_for
from ..errors import LayoutError, UsageError
from ..layout import LoadedLayout
from ..layout_load import layout_files, load_layout

Command = Callable[[argparse.Namespace], int]


def add_snapshot_commands(subparsers: Any) -> None:
    """Register `snapshots` (with its actions) and `archive` on cli/__init__.py's subparsers."""
    sp = subparsers.add_parser("snapshots", help="list, verify, compare and restore snapshots",
                               description="list, verify, compare and restore snapshots")
    sp.set_defaults(func=lambda args: _help(sp))
    _add_actions(sp.add_subparsers(metavar="ACTION"))
    ap = subparsers.add_parser("archive", help="move records matching the layout's archive rule "
                               "to the archive table and tab", description="move records matching "
                               "the layout's archive rule to the archive table and tab")
    ap.set_defaults(func=cmd_archive)
    ap.add_argument("layout", help="layout file, or name in the layouts folder")
    ap.add_argument("--dry-run", action="store_true", help="list what would move; change nothing")
    ap.add_argument("--layouts-dir", default=None, help="layouts folder (default ./layouts or $SHEETSYNC_LAYOUTS)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_actions(sub: Any) -> None:
    def action(name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        _common(p)
        return p

    action("list", cmd_list, "every snapshot, oldest first").add_argument("--json", action="store_true",
                                                                  help="print JSON instead of text")
    p = action("show", cmd_show, "one snapshot's manifest")
    p.add_argument("id", help="snapshot id, as `snapshots list` shows it")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p = action("diff", cmd_diff, "records added, removed and changed per table between two snapshots")
    p.add_argument("id1", help="the older snapshot")
    p.add_argument("id2", help="the newer snapshot")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p = action("verify", cmd_verify, "rehash every object and rebuild each store copy; "
               "exit 1 naming any broken object")
    p.add_argument("id", nargs="?", help="one snapshot (default: all)")
    p.add_argument("--all", action="store_true", help="every snapshot (the default)")
    p.add_argument("--quick", action="store_true", help="rehash objects only, no store rebuild")
    p = action("label", cmd_label, "name a snapshot; labelled snapshots are kept until unlabelled")
    p.add_argument("id", help="snapshot id, as `snapshots list` shows it")
    p.add_argument("name", nargs="?", help="the label")
    p.add_argument("--remove", action="store_true", help="remove the label")
    p = action("export", cmd_export, "write one self-contained .tar with a checksum list")
    p.add_argument("id", help="snapshot id, as `snapshots list` shows it")
    p.add_argument("file", help="the .tar to write")
    action("import", cmd_import, "add an exported .tar to the backup folder").add_argument(
        "file", help="a .tar made by `snapshots export`")
    p = action("restore", cmd_restore, "restore a sheet's version into a new workbook beside the "
               "live one, or (--replace) the store's records, audited, for the next sync to push")
    p.add_argument("id", help="snapshot id, as `snapshots list` shows it")
    p.add_argument("--layout", help="which layout's sheet or records (default: the snapshot's only one)")
    p.add_argument("--replace", action="store_true",
                   help="restore the layout's records into the live store (history kept)")
    action("forget", cmd_forget, "drop the snapshots the retention policy no longer keeps"
           ).add_argument("--layout", help="only this layout's snapshots, with its retention")
    p = action("prune", cmd_prune, "delete objects no snapshot needs")
    p.add_argument("--grace-minutes", type=float, default=15.0,
                   help="keep objects younger than this, a backup may be writing them (default 15)")
    help_ = "make a new backup key for backup.encrypt (printed, or written to a new file)"
    p = sub.add_parser("keygen", help=help_, description=help_)
    p.set_defaults(func=cmd_keygen)
    p.add_argument("--out", metavar="FILE", help="write the key to FILE (a new file, mode 0600) "
                   "for backup.key_file or SHEETSYNC_BACKUP_KEY_FILE")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layouts-dir", default=None, help="layouts folder (default ./layouts or $SHEETSYNC_LAYOUTS)")
    p.add_argument("--backup-dir", default=None, help="backup folder (default: the layout's backup.dir, "
                   "$SHEETSYNC_BACKUP_DIR, or backups/ next to the store)")
    p.add_argument("--key-file", default=None, help="backup key file (default: the layout's, or "
                   "$SHEETSYNC_BACKUP_KEY)")


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# -- where the backups are ----------------------------------------------------------------------

def _layouts(args: argparse.Namespace) -> dict[str, LoadedLayout]:
    """Valid layouts of the layouts folder by name (a broken one is `sheetsync check`'s business)."""
    folder = Path(args.layouts_dir or os.environ.get("SHEETSYNC_LAYOUTS") or "layouts")
    found: dict[str, LoadedLayout] = {}
    for path in layout_files([folder]) if folder.is_dir() else []:
        try:
            loaded = load_layout(path)
        except LayoutError:
            continue
        found.setdefault(loaded.name, loaded)
    return found


def _pick(args: argparse.Namespace, name: str | None) -> LoadedLayout | None:
    layouts = _layouts(args)
    if name is not None:
        if name not in layouts:
            if Path(name).is_file():
                return load_layout(name)
            raise UsageError(f"no layout named {name!r}", hint="pass --layouts-dir DIR; known: "
                             + (", ".join(sorted(layouts)) or "none"))
        return layouts[name]
    return next(iter(layouts.values()), None)


def _folder(args: argparse.Namespace, loaded: LoadedLayout | None) -> Path:
    from ..layout import store_path
    if args.backup_dir:
        return Path(args.backup_dir)
    if loaded is not None:
        return backup_dir_for(loaded, store_path(loaded))
    if os.environ.get("SHEETSYNC_BACKUP_DIR"):
        return Path(os.environ["SHEETSYNC_BACKUP_DIR"])
    raise UsageError("cannot tell where the backups are",
                     hint="pass --backup-dir DIR or --layouts-dir DIR, or set SHEETSYNC_BACKUP_DIR")


def _key(args: argparse.Namespace, loaded: LoadedLayout | None) -> bytes | None:
    if args.key_file:
        return backup.load_key(key_file=args.key_file)
    if loaded is not None:
        return key_for(loaded, required=False)
    return backup.load_key()


def _where(args: argparse.Namespace, layout: str | None = None) -> tuple[Path, bytes | None, LoadedLayout | None]:
    loaded = _pick(args, layout)
    return _folder(args, loaded), _key(args, loaded), loaded


# -- the snapshots actions ----------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    folder = _folder(args, _pick(args, None))
    rows = [{"id": m.id, "created": m.created, "run_id": m.run_id, "layouts": m.layouts,
             "label": m.label, "encrypted": m.encrypted, "objects": len(m.objects),
             "bytes": sum(r.size for r in m.objects.values())} for m in backup.list_snapshots(folder)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no snapshots in {folder}")
    for r in rows:
        flags = " encrypted" if r["encrypted"] else ""
        label = f"  [{r['label']}]" if r["label"] else ""
        print(f"{r['id']}  {r['created']}  run {r['run_id'] or '-'}  {','.join(r['layouts']) or '-'}"
              f"  {r['objects']} objects {r['bytes']} bytes{flags}{label}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    m = backup.show(_folder(args, _pick(args, None)), args.id)
    if args.json:
        print(json.dumps(asdict(m), ensure_ascii=False, indent=2))
        return 0
    print(f"snapshot {m.id}\n  created  {m.created}\n  run      {m.run_id or '-'}\n"
          f"  layouts  {', '.join(m.layouts) or '-'}\n  label    {m.label or '-'}\n"
          f"  encrypted {'yes (key ' + str(m.key_id) + ')' if m.encrypted else 'no'}")
    for name, ref in sorted(m.objects.items()):
        print(f"  {name:<40} {ref.size:>10} bytes  {ref.sha256[:16]}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    folder, key, _ = _where(args)
    changes = backup.diff(folder, args.id1, args.id2, key)
    if args.json:
        print(json.dumps(changes, ensure_ascii=False, indent=2))
        return 0
    for table, c in changes.items():
        if any(c.values()):
            print(f"{table}: +{c['added']} added, -{c['removed']} removed, ~{c['changed']} changed")
    if not any(any(c.values()) for c in changes.values()):
        print(f"no differences between {args.id1} and {args.id2}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    folder, key, _ = _where(args)
    report = backup.verify(folder, None if args.all else args.id, key, deep=not args.quick)
    for line in report.lines():
        print(line)
    return report.exit_code


def cmd_label(args: argparse.Namespace) -> int:
    folder = _folder(args, _pick(args, None))
    if args.remove:
        backup.unlabel(folder, args.id)
        print(f"{args.id}: label removed")
        return 0
    if not args.name:
        raise UsageError("give a label NAME, or --remove")
    m = backup.label(folder, args.id, args.name)
    print(f"{m.id}: labelled {m.label!r} (kept until the label is removed)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out = backup.export(_folder(args, _pick(args, None)), args.id, args.file)
    print(f"exported {args.id} to {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    folder, key, _ = _where(args)
    m = backup.import_(folder, args.file, key)
    print(f"imported {m.id} into {folder}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    loaded = _pick(args, args.layout)
    policy = loaded.layout.retention if loaded is not None else None
    dropped = backup.forget(_folder(args, loaded), policy, layout=args.layout)
    print(f"forgot {len(dropped)} snapshot(s)" + "".join(f"\n  {d}" for d in dropped))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from datetime import timedelta
    report = backup.prune(_folder(args, _pick(args, None)),
                          grace=timedelta(minutes=args.grace_minutes))
    print(f"deleted {len(report.deleted)} object(s), {report.bytes_freed} bytes; "
          f"{report.kept} kept; {report.temp_removed} leftover temp file(s) removed")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    if not args.out:
        print(backup.generate_key())
        print(f"set it as {backup.crypto.ENV_KEY}, or save it with `sheetsync snapshots keygen "
              "--out FILE`; keep a copy away from the backups", file=sys.stderr)
        return 0
    target = backup.crypto.write_key_file(args.out)
    print(f"wrote a new backup key to {target}; set `backup: {{encrypt: true, key_file: "
          f"{target}}}` in the layout (a path relative to it) or {backup.crypto.ENV_KEY_FILE}; "
          "keep a copy away from the backups: without it encrypted snapshots cannot be read")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    try:
        loaded = _pick(args, args.layout)
    except UsageError:
        if args.replace or not args.backup_dir:
            raise
        loaded = None  # the layout is gone: the copy goes to the current folder
    folder, key = _folder(args, loaded), _key(args, loaded)
    name = args.layout or _only_layout(backup.show(folder, args.id))
    if loaded is not None and loaded.name != name:
        loaded = _pick(args, name)
    if args.replace:
        if loaded is None:
            raise UsageError(f"no layout {name!r} to restore into", hint="pass --layouts-dir DIR")
        if _recovered(loaded, folder, args.id, key):
            return 0
        counts = restore_records(loaded, folder, args.id, key)
        print(f"restored {loaded.layout.table} from {args.id}: {counts['changed']} record(s) "
              f"changed, {counts['deleted']} deleted (history action 'restore'); the next sync "
              "pushes them to the sheet, edits made since show up as conflicts")
        return 0
    sheet = backup.restore_sheet(folder, args.id, name, key)
    target = restore_copy_path(loaded, name, args.id)
    write_sheet_copy(sheet, target, loaded)
    print(f"restored sheet {sheet.sheet!r} of {name} at {args.id} into {target}")
    return 0


def _recovered(loaded: LoadedLayout, folder: Path, snap_id: str, key: bytes | None) -> bool:
    """A missing or damaged store is rebuilt whole from the snapshot (the damaged file kept)."""
    from ..backup.recover import needs_recovery, recover_store
    from ..layout import store_path
    db = store_path(loaded)
    problem = needs_recovery(db)
    if not problem:
        return False
    done = recover_store(folder, snap_id, db, key, problem)
    kept = "".join(f"\n  the damaged file is kept as {p}" for p in done.set_aside)
    print(f"the store {db} was {'missing' if problem == 'missing' else 'damaged (' + problem + ')'}; "
          f"rebuilt it whole from snapshot {snap_id}{kept}\n  the next sync takes the edits made "
          "in the sheet since the snapshot")
    return True


def _only_layout(manifest: backup.Manifest) -> str:
    if len(manifest.layouts) != 1:
        raise UsageError(f"snapshot {manifest.id} holds layouts {', '.join(manifest.layouts) or 'none'}",
                         hint="pass --layout NAME")
    return manifest.layouts[0]


def restore_copy_path(loaded: LoadedLayout | None, name: str, snap_id: str) -> Path:
    """NAME.restored-<ID>.xlsx beside the workbook; a sibling csv for csv; else beside the layout."""
    source = loaded.layout.source if loaded is not None else None
    if source is not None and source.kind in ("xlsx", "csv") and source.path:
        live = loaded.resolve(source.path)
        suffix = ".csv" if source.kind == "csv" else ".xlsx"
        target = live.with_name(f"{live.stem}.restored-{snap_id}{suffix}")
    else:
        folder = loaded.path.parent if loaded is not None else Path.cwd()
        target = folder / f"{name}.restored-{snap_id}.xlsx"
    if target.exists():
        raise UsageError("the restore file already exists", where=str(target),
                         hint="move or delete it, then restore again")
    return target


def write_sheet_copy(sheet: backup.SheetCopy, target: Path, loaded: LoadedLayout | None) -> None:
    """The sheet's values, all as text (as snapshotted), in a new file written atomically."""
    from ..connectors.safe_write import atomic_write
    if target.suffix == ".csv":
        import csv
        import io
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows([sheet.header, *sheet.rows])
        enc = (loaded.layout.source.encoding if loaded is not None else None) or "utf-8-sig"
        body = out.getvalue().encode(enc)
        atomic_write(target, lambda fh: fh.write(body))
        return
    import openpyxl
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = (sheet.sheet or "restored")[:31]
    for r, row in enumerate([sheet.header, *sheet.rows], start=1):
        for c, text in enumerate(row, start=1):
            if text != "":
                cell = ws.cell(row=r, column=c)
                cell.value = text
                cell.data_type = "s"
    atomic_write(target, book.save)


def restore_records(loaded: LoadedLayout, folder: Path, snap_id: str,
                    key: bytes | None) -> dict[str, int]:
    """Copy the layout's records from the snapshot's store into the live store through
    write_record (history action "restore"); live records absent from it are soft-deleted.

    The lease is taken first, so the snapshot's store copy (a folder named for this process)
    exists only while it is held; a killed restore's lease and folder go at the next command."""
    from ..engine import lease
    from ..layout import store_path
    from ..engine.run_support import env_hook
    from ..store import Store
    layout, db = loaded.layout, store_path(loaded)
    run_id = f"restore-{snap_id}"
    with Store(db) as live:
        live.ensure_table(layout.table, {f: c.type for f, c in layout.columns.items()})
        with lease.held(live, loaded.name, run_id, hint="restore again when that run has finished"):
            lease.clean_restore_leftovers(live)
            with tempfile.TemporaryDirectory(dir=db.parent, prefix=lease.restore_folder_prefix()) as tmp:
                copy = backup.restore_store(folder, snap_id, Path(tmp) / "snapshot.db", key)
                wanted = _snapshot_records(layout.table, copy, snap_id)
                env_hook()("restore")  # the crash tests' kill point: lease held, store copy on disk
            return _replace_records(live, loaded, wanted, run_id, snap_id)


def _snapshot_records(table: str, copy: Path, snap_id: str) -> dict[str, dict]:
    from ..store import Store
    with Store(copy) as old:
        if table not in old.tables():
            raise UsageError(f"snapshot {snap_id} has no table {table!r}",
                             hint="pick a snapshot taken after this layout's first sync")
        return old.records(table, include_deleted=False)


def _replace_records(live: Any, loaded: LoadedLayout, wanted: dict[str, dict], run_id: str,
                     snap_id: str) -> dict[str, int]:
    """One transaction: the snapshot's records written, live records it lacks soft-deleted."""
    layout = loaded.layout
    counts = {"changed": 0, "deleted": 0}
    with live.transaction():
        before = live.records(layout.table)
        for k, rec in wanted.items():
            values = {f: rec[f] for f in layout.columns if f in rec}
            rev = live.write_record(layout.table, k, values, action="restore",
                                    run_id=run_id, layout=loaded.name, actor=f"snapshot {snap_id}")
            counts["changed"] += rev != (before.get(k) or {}).get("_rev")
        for k, rec in before.items():
            if k not in wanted and not rec["_deleted"]:
                counts["deleted"] += live.delete_record(layout.table, k, run_id=run_id,
                                                        layout=loaded.name) is not None
    return counts


# -- archive ------------------------------------------------------------------------------------

def cmd_archive(args: argparse.Namespace) -> int:
    from ..archive import archive
    from .layouts import resolve_layouts
    from ..connectors import from_source
    from ..layout import store_path
    from ..store import Store
    loaded = load_layout(resolve_layouts([args.layout], False, args.layouts_dir)[0])
    db = store_path(loaded)
    if not db.exists():
        raise UsageError(f"no store at {db}", hint="run `sheetsync sync` first")
    connector = None if args.dry_run else from_source(loaded.layout.source, loaded.path.parent)
    with Store(db) as store:
        res = archive(loaded, store, connector, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(res.to_json(), ensure_ascii=False, indent=2))
    else:
        print("\n".join(archive_text(res)))
    return 1 if (res.skipped or res.rows_to_delete) and not res.dry_run else 0


def archive_text(res: Any) -> list[str]:
    verb = "would move" if res.dry_run else "moved"
    lines = [f"{res.layout}: {verb} {len(res.keys)} record(s) to table {res.archive_table}"]
    lines += [f"  {k}" + (f" (row {res.rows[k]})" if k in res.rows else "") for k in res.keys]
    if res.archive_copy:
        lines.append(f"archive copy written to {res.archive_copy}")
    if res.rows_removed:
        lines.append(f"removed sheet rows {', '.join(map(str, res.rows_removed))}")
    if res.rows_to_delete:
        why = f" ({res.why_not_removed})" if res.why_not_removed else ""
        lines.append(f"{'rows to delete from' if not res.dry_run else 'rows that would leave'} the "
                     f"sheet: {', '.join(map(str, res.rows_to_delete))}{why}")
    lines += [f"skipped {k}: {why}" for k, why in res.skipped.items()]
    return lines
