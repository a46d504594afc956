"""Names of the simulated people and companies, and the emails built from them.

The lists are short, invented-for-the-purpose vocabularies: no real person's or company's record
is reproduced. Company names are a bijection of the account number, so names are unique without
a lookup table, and emails live under the reserved ``.example`` top-level domain (RFC 2606).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

# The vocabularies are data tables: packed by hand, not one word per line.
# fmt: off
FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sophia", "Lucas", "Isabella", "Ethan",
    "Mia", "James", "Amelia", "Benjamin", "Harper", "Elijah", "Evelyn", "Daniel", "Abigail",
    "Henry", "Emily", "Samuel", "Charlotte", "David", "Priya", "Arjun", "Ananya", "Rohan",
    "Mei", "Wei", "Yuki", "Haruto", "Min-jun", "Seo-yeon", "Fatima", "Omar", "Aisha", "Yusuf",
    "Chloé", "Hugo", "Léa", "Louis", "Björn", "Astrid", "Lars", "Ingrid", "José", "Lucía",
    "Diego", "Valentina", "Thiago", "Camila", "Renée", "Jürgen", "Anja", "Tomás", "Niamh",
    "Siobhan", "Kwame", "Amara", "Chidi", "Zanele", "Grace", "Jack", "Ruby", "Oscar", "Freya",
    "Kai", "Nora", "Leo", "Maya", "Ivan", "Elena", "Pavel", "Zofia", "Marek", "Sara", "Ali",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
    "Patel", "Sharma", "Gupta", "Iyer", "Chen", "Wang", "Li", "Zhang", "Tanaka", "Suzuki",
    "Sato", "Kim", "Park", "Choi", "Nguyen", "Tran", "Haddad", "Khan", "Rahman", "Okafor",
    "Mensah", "Dubois", "Lefèvre", "Moreau", "Müller", "Schmidt", "Schneider", "Fischer",
    "Weber", "Jansen", "de Vries", "Bakker", "Johansson", "Lindqvist", "Nielsen", "Hansen",
    "Rossi", "Bianchi", "Ferrari", "Fernández", "González", "Núñez", "Silva", "Santos",
    "Oliveira", "Costa", "O'Brien", "Murphy", "Kowalski", "Nowak", "Novak", "Horvat", "Ivanova",
)
TITLES = (
    "Head of Operations", "VP Customer Experience", "Director of Analytics", "IT Manager",
    "Operations Manager", "Data Analyst", "Product Manager", "Chief Operating Officer",
    "Finance Manager", "Business Analyst", "Marketing Operations Lead", "Engineering Manager",
    "Procurement Specialist", "Team Lead", "Customer Support Manager", "CTO",
)
# The customer success managers who own accounts: a small team, as at most SaaS companies.
CSM_NAMES = (
    "Dana Whitfield", "Marcus Oyelaran", "Priya Raman", "Tom Becker", "Lucia Ferreira",
    "Kenji Watanabe", "Sofia Lindgren", "Aaron Mitchell",
)

_NAME_HEADS = (
    "Blue", "North", "Silver", "Bright", "Summit", "Harbor", "Cedar", "Granite", "Maple",
    "Crescent", "Evergreen", "Ironwood", "Lakeside", "Redwood", "Sterling", "Pioneer",
    "Atlas", "Beacon", "Cobalt", "Copper", "Falcon", "Golden", "Horizon", "Juniper", "Keystone",
    "Lighthouse", "Meridian", "Nimbus", "Orchid", "Pinnacle", "Quarry", "Riverstone", "Sable",
    "Tidewater", "Union", "Vantage", "Willow", "Zenith", "Aurora", "Bluebird",
)
_NAME_ROOTS = (
    "Peak", "Ridge", "Bay", "Field", "Stone", "Brook", "Point", "Gate", "Bridge", "Forge",
    "Works", "Line", "Path", "Crest", "Valley", "Grove", "Port", "Mill", "Haven", "Wave",
    "Spring", "Creek", "Vale", "Hill", "Shore", "Star", "Arc", "Loop", "Key", "Trail",
)
_NAME_TAILS = (
    "Logistics", "Analytics", "Health", "Foods", "Labs", "Systems", "Partners", "Group",
    "Media", "Studios", "Financial", "Insurance", "Robotics", "Retail", "Energy", "Software",
    "Consulting", "Manufacturing", "Learning", "Travel", "Realty", "Biotech", "Apparel",
    "Networks", "Capital", "Outfitters", "Brewing", "Clinics", "Freight", "Interactive",
)
_PUBLIC_PLACES = (
    "Sapporo", "Sendai", "Yokohama", "Nagoya", "Kobe", "Fukuoka", "Hiroshima", "Kyoto",
    "Niigata", "Kumamoto", "Shizuoka", "Okayama", "Busan", "Incheon", "Daegu", "Daejeon",
    "Gwangju", "Ulsan", "Suwon", "Changwon", "Jeonju", "Cheongju", "Gyeongju", "Sejong",
)
_PUBLIC_AGENCIES = (
    "City Office", "Prefectural Government", "Transit Authority", "Water Bureau",
    "Public Library", "Health Service", "Education Board", "Tax Office", "Fire Department",
    "Statistics Office", "Port Authority", "Housing Agency",
)
# fmt: on


def company_names(account_numbers: np.ndarray, seed: int, public_sector: np.ndarray) -> list[str]:
    """A unique company name per account number.

    The number is mapped through an affine bijection of the name space (a step coprime with its
    size), so neighbouring accounts get unrelated names and no two numbers share one; numbers
    beyond the space get a trailing ordinal.
    """
    core = (_NAME_HEADS, _NAME_ROOTS, _NAME_TAILS)
    public = (_PUBLIC_PLACES, _PUBLIC_AGENCIES)
    return [
        _name_from_index(int(number), seed, public if is_public else core)
        for number, is_public in zip(account_numbers, public_sector, strict=True)
    ]


def _name_from_index(number: int, seed: int, words: tuple[tuple[str, ...], ...]) -> str:
    space = int(np.prod([len(w) for w in words]))
    step = _coprime_step(space, seed)
    slot = (number * step + seed) % space
    parts = []
    for vocabulary in words:
        slot, pick = divmod(slot, len(vocabulary))
        parts.append(vocabulary[pick])
    name = " ".join(parts)
    lap = number // space
    return f"{name} {lap + 1}" if lap else name


def _coprime_step(space: int, seed: int) -> int:
    step = 7919 + 2 * (seed % 1000)
    while np.gcd(step, space) != 1:
        step += 1
    return step


def email_domain(company: str) -> str:
    """A company's mail domain under the reserved ``.example`` top-level domain."""
    return f"{_ascii_slug(company, '-')}.example"


def email_address(first: str, last: str, domain: str) -> str:
    """``first.last@domain`` in lowercase ASCII: accents are folded, other symbols dropped."""
    return f"{_ascii_slug(first, '')}.{_ascii_slug(last, '')}@{domain}"


def _ascii_slug(text: str, joiner: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", folded.lower())
    return joiner.join(words)
