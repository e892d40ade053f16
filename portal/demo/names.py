"""Fixed material for the demo data: places, catalogue, and the texts people write.

Kept apart from the demo's stories so the generator reads as a story, not as a list of strings."""
from __future__ import annotations

from decimal import Decimal as D

# Postal districts: (city, postal code) pairs that belong together.
PRAHA = [
    ("Praha 1", "110 00"), ("Praha 2", "120 00"), ("Praha 3", "130 00"), ("Praha 4", "140 00"),
    ("Praha 5", "150 00"), ("Praha 6", "160 00"), ("Praha 7", "170 00"), ("Praha 8", "180 00"),
    ("Praha 9", "190 00"), ("Praha 10", "100 00"),
]
BRNO = [("Brno", pc) for pc in ("602 00", "612 00", "613 00", "614 00", "615 00", "616 00", "625 00", "628 00", "638 00")]
BRATISLAVA = [("Bratislava", pc) for pc in ("811 01", "811 04", "821 05", "831 02", "841 04", "851 01")]

# Second places where some customers have a connection (a cottage, a shop, a parent's flat).
NEARBY = {
    "PRG": [("Říčany", "251 01"), ("Černošice", "252 28"), ("Beroun", "266 01"), ("Kladno", "272 01")],
    "BRN": [("Kuřim", "664 34"), ("Šlapanice", "664 51"), ("Modřice", "664 42"), ("Blansko", "678 01")],
    "BTS": [("Senec", "903 01"), ("Pezinok", "902 01"), ("Malacky", "901 01")],
}

# Service definitions: code → (group kind, name, customer name, price CZK, VAT, period,
# commitment months, notice days, selfcare changeable).
CATALOGUE = [
    ("NET100", "internet", "Internet 100 Mbit", "Internet 100 Mbit/s", D("399.00"), D("21.00"), "monthly", 0, 30, True),
    ("NET300", "internet", "Internet 300 Mbit", "Internet 300 Mbit/s", D("449.00"), D("21.00"), "monthly", 12, 30, True),
    ("NET500", "internet", "Internet 500 Mbit", "Internet 500 Mbit/s", D("599.00"), D("21.00"), "monthly", 24, 30, True),
    ("NET1000", "internet", "Internet 1000 Mbit", "Internet 1 Gbit/s", D("799.00"), D("21.00"), "monthly", 0, 30, True),
    ("TVBASIC", "tv", "TV Basic", "TV Basic (80 channels)", D("199.00"), D("21.00"), "monthly", 0, 30, True),
    ("TVPLUS", "tv", "TV Plus", "TV Plus (160 channels, 7-day replay)", D("349.00"), D("21.00"), "monthly", 0, 30, True),
    ("TVNEWS", "tv", "TV News & Documentaries", "TV News & Documentaries", D("129.00"), D("12.00"), "monthly", 0, 30, True),
    ("VOICEFLEX", "voice", "Voice Flexi (per minute)", "Phone Flexi: pay per minute", D("49.00"), D("21.00"), "monthly", 0, 30, False),
    ("VOICEUNL", "voice", "Voice Unlimited", "Phone Unlimited", D("299.00"), D("21.00"), "monthly", 0, 30, False),
    ("PUBLICIP", "other", "Public IPv4 address", "Public IP address", D("99.00"), D("21.00"), "monthly", 0, 30, False),
    ("ROUTER", "other", "Wi-Fi router rental", "Wi-Fi router rental", D("49.00"), D("21.00"), "monthly", 0, 30, False),
    ("INSTALL", "other", "Installation", "Installation and connection", D("990.00"), D("21.00"), "one_off", 0, 0, False),
]

# The EUR location bills from a EUR price list: definitions carry one price, so services in
# Bratislava carry their EUR price as the service's price override.
EUR_PRICES = {
    "NET100": D("14.90"), "NET300": D("17.90"), "NET500": D("22.90"), "NET1000": D("29.90"),
    "TVBASIC": D("7.90"), "TVPLUS": D("12.90"), "TVNEWS": D("4.90"),
    "PUBLICIP": D("3.90"), "ROUTER": D("1.90"), "INSTALL": D("39.00"),
}

CANCEL_REASONS = [
    "Moving away from the coverage area",
    "Switching to another provider",
    "No longer needed",
    "Price",
    "Customer deceased; cancelled by the family",
]

CUSTOMER_NOTES = [
    "Prefers calls after 4 pm.",
    "Technician needs to call ahead: the gate is locked.",
    "Former customer of a network we took over.",
    "Asked for paper invoices in the past; now e-mail.",
    "Router in the attic; signal checked on site.",
]
