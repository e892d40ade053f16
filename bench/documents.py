"""Benchmark of the documents module: `.venv/bin/python -m bench.documents [--renders N]`.

Measures, in one process and one run:
- seconds per invoice PDF (1 page, and 3 pages of lines) and per agreement through the
  portal's pipeline, next to raw WeasyPrint on the same HTML with the same PDF options
  (ratio; target ≤ 1.1×);
- a stored download (read_document: read + sha256 check) against a render (target ≥ 50×);
- resident memory over N renders in one process (target: < +10 MB after the first 50).

Times are CPU seconds of this process (medians). Results are merged by name into
bench/results.json. PORTAL_BENCH_DATABASE_URL selects the
database (default: a temporary SQLite file).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# CPU time of this process, not wall time: on a shared machine the wall clock measures the
# neighbours' load; rendering is single-threaded CPU work, so CPU seconds compare fairly.
clock = time.process_time


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = clock()
        fn()
        out.append(clock() - t)
    return out


def interleaved(a, b, repeat: int) -> tuple[float, float]:
    """Median seconds of `a` and `b`, run alternately so machine load hits both alike."""
    ta, tb = [], []
    a(), b()  # warm-up
    for _ in range(repeat):
        ta += timed(a, 1)
        tb += timed(b, 1)
    return statistics.median(ta), statistics.median(tb)


def merge_results(entries: list[dict]) -> None:
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    by_name = {e["name"]: e for e in existing}
    for e in entries:
        by_name[e["name"]] = e
    RESULTS.write_text(json.dumps(list(by_name.values()), indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--renders", type=int, default=1000, help="renders for the memory measurement (0: skip)")
    args = parser.parse_args()

    from weasyprint import CSS, HTML, Attachment

    from portal import create_app
    from portal.documents import cii, data, document_for, kind_for, read_document, render, service
    from portal.extensions import db
    from portal.models import Base

    tmp = Path(tempfile.mkdtemp(prefix="bench-documents-"))
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}"
    if url.startswith("postgresql"):
        from tests.conftest import ensure_postgres_database

        ensure_postgres_database(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "DOCUMENTS_DIR": str(tmp / "documents"),
                      "HUEY_URL": "memory://", "MAIL_OUTBOX_DIR": str(tmp / "outbox")})
    database = "postgresql" if url.startswith("postgresql") else "sqlite"
    results: list[dict] = []

    def record(name, value, unit, baseline=None, ratio=None):
        # Named per database: runs on SQLite and PostgreSQL both stay in results.json.
        name = f"documents.{name}.{database}"
        entry = {"name": name, "value": round(value, 6), "unit": unit,
                 "baseline": None if baseline is None else round(baseline, 6),
                 "ratio": None if ratio is None else round(ratio, 3), "database": database}
        results.append(entry)
        extra = f"  baseline {baseline:.4f}" if baseline is not None else ""
        extra += f"  ratio {ratio:.2f}×" if ratio is not None else ""
        print(f"{name:52s} {value:10.4f} {unit}{extra}")

    with app.app_context():
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        from tests.documents.doc_fixtures import make_agreement, make_invoice

        session = db.session
        one_page = make_invoice()
        many = [(f"Usage item {i}: data transfer, period and details", "3", "12.50", "21") for i in range(90)]
        three_pages = make_invoice(one_page.customer, lines=many, number="2026-000124")
        agreement = make_agreement(one_page.customer)
        session.commit()

        stylesheet_path = str(render.STYLESHEET)
        base_url = str(render.TEMPLATES_DIR) + "/"

        def invoice_case(invoice):
            def ours():
                d = data.invoice_data(invoice)
                service.invoice_pdf(d)

            d = data.invoice_data(invoice)
            xml, level = cii.invoice_xml(d)
            html = render.render_html("invoice.html", {"invoice": d, "supplier": d["supplier"],
                                                       "qr": service._invoice_qr(d), "doc_label": d["number"]})

            def raw():
                HTML(string=html, base_url=base_url).write_pdf(
                    stylesheets=[CSS(filename=stylesheet_path)], pdf_variant="pdf/a-3b",
                    attachments=[Attachment(string=xml, name="factur-x.xml", relationship="Data")],
                )

            return ours, raw

        for name, invoice in (("invoice_pdf_1_page", one_page), ("invoice_pdf_3_pages", three_pages)):
            ours, raw = invoice_case(invoice)
            t_ours, t_raw = interleaved(ours, raw, args.repeat)
            record(name, t_ours, "s", t_raw, t_ours / t_raw)

        def agreement_ours():
            d = data.agreement_data(agreement)
            service._render_agreement(agreement, d)

        ad = data.agreement_data(agreement)
        agreement_html = render.render_html("agreements/standard.html",
                                            {"agreement": ad, "supplier": ad["supplier"], "doc_label": ad["number"]})

        def agreement_raw():
            HTML(string=agreement_html, base_url=base_url).write_pdf(stylesheets=[CSS(filename=stylesheet_path)])

        t_ours, t_raw = interleaved(agreement_ours, agreement_raw, args.repeat)
        record("agreement_pdf", t_ours, "s", t_raw, t_ours / t_raw)

        # A stored download against a render of the same invoice.
        doc = document_for(session, kind_for(one_page), one_page)
        session.commit()
        ours, _ = invoice_case(one_page)
        t_render = statistics.median(timed(ours, args.repeat))
        t_read = statistics.median(timed(lambda: read_document(doc), 200))
        record("stored_download_read_document", t_read, "s", t_render, t_render / t_read)

        if args.renders < 50:
            merge_results(results)
            print(f"written to {RESULTS}")
            return

        # Memory over many renders in one process (shared FontConfiguration, cached stylesheet).
        gc.collect()
        after_50 = None
        peak = 0.0
        start = clock()
        for i in range(1, args.renders + 1):
            ours()
            if i == 50:
                gc.collect()
                after_50 = rss_mb()
            if i >= 50:
                peak = max(peak, rss_mb())
        elapsed = clock() - start
        record(f"rss_growth_after_50_of_{args.renders}_renders", peak - after_50, "MB", after_50, None)
        record(f"rss_peak_{args.renders}_renders", peak, "MB")
        record("invoice_pdf_1_page_sustained", elapsed / args.renders, "s")

    merge_results(results)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
