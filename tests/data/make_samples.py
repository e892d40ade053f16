"""How the portal's own ABO samples in this folder were written (kept so they can be re-made;
the real banks' samples are listed in README.md). Run: python tests/data/make_samples.py"""
from pathlib import Path

HERE = Path(__file__).resolve().parent


def abo_header(account: str, name: str, day: str, number: int = 1) -> str:
    line = (f"074{account:0>16}{name:<20.20}{day}{0:014d}+{0:014d}+{0:014d}0{0:014d}0"
            f"{number:03d}{day}{'':14}")
    assert len(line) == 128
    return line


def abo_item(account: str, counter: str, bank: str, document: int, hellers: int, code: int, vs: str = "",
             ks: str = "", ss: str = "", day: str = "040325", name: str = "", currency: str = "0203") -> str:
    line = (f"075{account:0>16}{counter:0>16}{document:013d}{hellers:012d}{code}{vs:0>10}"
            f"00{bank:0>4}{ks:0>4}{ss:0>10}{day}{name:<20.20}0{currency}{day}")
    assert len(line) == 128, len(line)
    return line


OURS = "192000145399"  # 19-2000145399/0800, the test partner's account

if __name__ == "__main__":
    lines = [
        abo_header(OURS, "EXAMPLE NET SRO", "050325"),
        abo_item(OURS, "123456789", "0300", 1001, 60500, 2, vs="2025000101", name="NOVAKOVA JANA"),
        "076Platba za internet brezen",
        abo_item(OURS, "190000123457", "0100", 1002, 60500, 2, vs="7100001", ks="0308", name="DVORAK KAREL"),
        abo_item(OURS, "0", "0", 1003, 1500, 1, name="POPLATEK"),
        abo_item(OURS, "55555555", "2010", 1004, 30000, 2, vs="99999", name="NEZNAMY"),
    ]
    (HERE / "abo_portal.gpc").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1250"))
    lines = [
        abo_header(OURS, "EXAMPLE NET SRO", "100325", 2),
        # the bank takes back Jana's payment (reversal of a credit) and returns a debit of ours
        abo_item(OURS, "123456789", "0300", 2001, 60500, 5, vs="2025000101", day="100325", name="STORNO"),
        abo_item(OURS, "777777", "0800", 2002, 1500, 4, day="100325", name="VRACENA PLATBA"),
    ]
    (HERE / "abo_portal_reversal.gpc").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1250"))
