"""Currencies: which codes the emulator accepts, their minor units, display of amounts."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .errors import invalid

_CODES = """
usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp
byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip
gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt
lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr
nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd
std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar
zmw
"""
SUPPORTED_CURRENCIES = frozenset(_CODES.split())
ZERO_DECIMAL = frozenset(
    (
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    )
)
THREE_DECIMAL = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))


def currency(value: str, param: str = "currency") -> str:
    code = value.lower()
    if code not in SUPPORTED_CURRENCIES:
        raise invalid(
            f"Invalid currency: {value}. Stripe currently supports these currencies: "
            + ", ".join(sorted(SUPPORTED_CURRENCIES)),
            param,
        )
    return code


# Stripe's minimum charge amounts (minor units); an invoice due less is marked paid and the
# amount carried to the customer's balance. Other currencies: the equivalent of USD 0.50,
# approximated here as 50 minor units.
MINIMUM_CHARGE = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}


def minimum_charge(code: str) -> int:
    return MINIMUM_CHARGE.get(code, 50)


def exponent(code: str) -> int:
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def display(amount: int, code: str) -> str:
    """``$12.00`` for usd, ``12.00 EUR`` otherwise (amounts are in minor units)."""
    exp = exponent(code)
    major = Decimal(amount).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))
    return f"${major}" if code == "usd" else f"{major} {code.upper()}"


def round_minor(value: Decimal) -> int:
    """Round a computed minor-unit amount to an integer, half away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def decimal_text(value: Decimal) -> str:
    """A decimal as Stripe writes ``*_decimal`` fields: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")
