"""Words and amounts common to every catalog's extractive attributes (tagger.evidence.common): a gender, an age, a
colour, an amount in the attribute's units, found in the title without a pool, joined where names stand side by
side, never inside a part number, and never in place of what the pool found."""

from __future__ import annotations

from tagger import calibrate
from tagger.clean import Cleaner
from tagger.evidence import EvidenceMatcher, LexicalTagger
from tagger.evidence.common import common_spans, vocabulary
from tagger.evidence.text import words
from tagger.product import Product
from tagger.records import Evidence
from tagger.retrieval.examples import PoolItem
from tagger.taxonomy import Attribute, Category, Taxonomy


def extractive(name: str) -> Attribute:
    return Attribute(name.casefold().replace(" ", "_"), name, extractive=True)


def spans(name: str, text: str) -> list[str]:
    common = vocabulary(extractive(name))
    assert common is not None
    found = words(text)
    return [text[found[spot.first].start : spot.end] for spot in common_spans(common, found, text)]


def test_only_attributes_named_as_a_common_kind_have_a_vocabulary() -> None:
    assert vocabulary(extractive("Brand")) is None
    assert vocabulary(extractive("Model name")) is None
    assert vocabulary(extractive("Size")) is None  # "M" and "10" say nothing alone
    for name in ("Gender", "Age", "Color", "Color(s)", "Net content", "Clock Speed"):
        assert vocabulary(extractive(name)) is not None, name


def test_names_side_by_side_are_one_value() -> None:
    assert spans("Color", "Stacy Adams Men's Oxford,Black/White,12 D") == ["Black/White"]
    assert spans("Gender", "Stacy Adams Men's Oxford,Black/White,12 D") == ["Men's"]
    assert spans("Age", "Brushies Baby & Toddler Toothbrush, for Infants, Babies, and Kids") == [
        "Baby & Toddler",
        "Infants, Babies, and Kids",
    ]
    assert spans("Color", "Black Oxford with White sole") == ["Black", "White"]  # words between: two values


def test_a_colour_in_a_part_of_its_own_is_that_part() -> None:
    # Variant titles write a colour's full name between separators; the leading part is the brand and product.
    assert spans("Color", "Crocs Women's Jayna Ballet Flat,Nautical Navy,4 M US") == ["Nautical Navy"]
    assert spans("Color", "Tommie Copper Face Masks - Black and Cobalt Blue") == ["Black and Cobalt Blue"]
    assert spans("Color", "Black Face Mask, 5 Pcs") == ["Black"]  # the leading part is not a colour's
    assert spans("Color", "Philips Toothbrush, Lunar Blue HX9957/51") == ["Blue"]  # a part with a number is no name
    assert spans("Color", "Face Mask, Breathable Black Cotton Cover For Adults") == ["Black"]  # a long part
    # A part that repeats a colour is words scraped together (WDC-PAVE's title tails), not a colour's name.
    assert spans("Color", "Rubbermaid Trash Cart w/ 1200-lb Capacity, Black Black Capacity") == ["Black", "Black"]


def test_a_colour_that_is_also_something_else_counts_only_alone_in_its_part() -> None:
    assert spans("Color", "Seventh Generation Laundry Detergent, Free & Clear, 100 oz") == []
    assert spans("Color", "Eminence Tropical Vanilla Day Cream SPF 32, 2 Ounce") == []
    assert spans("Color", "Australian Gold Sunscreen Lotion SPF 15, 8 Ounce") == []
    assert spans("Color", "Mrs. Meyer's Detergent, Lavender Scent, 64 oz") == []
    assert spans("Color", "Fila Men's Original Tennis, Cream/E.Navy, 11 M US") == ["Cream/E.Navy"]
    assert spans("Color", "Piave Golden Plated Toothbrush, Gold") == ["Gold"]


def test_amounts_in_the_attributes_units_only_and_never_inside_a_part_number() -> None:
    assert spans("Net content", "Nescafe Espresso, 3.5oz/100g (Pack of 3)") == ["3.5oz/100g"]
    assert spans("Net content", "Coffee 12 oz (Pack of 2), 5 lb") == ["12 oz", "5 lb"]
    assert spans("Net content", "Drive 300GB") == []  # gigabytes are no net content
    assert spans("Capacity", "HP 146-GB 15K SAS") == ["146-GB"]
    assert spans("Thermal Design Power", "HP 750W Power Supply 00W1306 CR272 w/F9541") == ["750W"]
    assert spans("Capacity", 'Boos Dunnage Rack 36"L, Advance Tabco 9-1-24-24L Sink') == []
    assert spans("Cache", "Xeon 2.4GHz 8MB 146GB") == ["8MB"]


def test_an_amount_and_its_equivalent_are_one_value() -> None:
    assert spans("Net content", "Neutrogena Body Mist Spray 5 Ounce (148ml)") == ["5 Ounce (148ml)"]
    assert spans("Net content", "OxiClean Spray, 21.5 fl oz (636 ml) (Pack of 2)") == ["21.5 fl oz (636 ml)"]
    assert spans("Net content", "Mary Kay Cc Cream 1 FL. oz/ 29 ml") == ["1 FL. oz/ 29 ml"]
    assert spans("Volume", "Conditioner 250 mL / 8.45 Fl Oz.") == ["250 mL / 8.45 Fl Oz"]
    assert spans("Net content", "Coffee 12 oz 340 g") == ["12 oz", "340 g"]  # nothing sets them beside each other
    assert spans("Net content", "Hills Bros. Cappuccino (16 Ounces) (16 Ounce)") == ["16 Ounces", "16 Ounce"]


def test_without_a_pool_the_title_common_words_are_candidates() -> None:
    attributes = [extractive("Gender"), extractive("Color"), extractive("Brand")]
    tax = Taxonomy("t", "1", [Category("shoes", "Shoes", attributes=tuple(a.handle for a in attributes))], attributes)
    product = Cleaner().clean(Product("p", "Crocs Women's Clog, Navy", "Fits men's feet too; also in red")).product
    got = EvidenceMatcher(tax).candidates(product, tax.categories["shoes"])
    assert "brand" not in got  # nothing common to every catalog names a brand
    # The description's words are not offered: descriptions list what a product fits and comes in.
    assert [(e.value, e.source, e.matched) for e in got["gender"]] == [("Women's", "text", "common")]
    color = got["color"]
    assert [e.value for e in color] == ["Navy"]
    assert [(s.field, product.title[s.start : s.end]) for s in color[0].spans] == [("title", "Navy")]
    record = LexicalTagger(tax).tag(product, tax.categories["shoes"])
    assert record.attributes == {"gender": ["Women's"], "color": ["Navy"]}
    evidence = next(e for e in record.evidence if e.attribute == "color")
    assert calibrate.value_kind(evidence) == "text:common"


def test_what_the_pool_found_keeps_its_evidence() -> None:
    attributes = [extractive("Color")]
    tax = Taxonomy("t", "1", [Category("shoes", "Shoes", attributes=("color",))], attributes)
    pool = [
        PoolItem(Product(f"p{i}", f"Pump {i}, Black Patent"), tax.categories["shoes"], {"color": ["Black Patent"]})
        for i in range(3)
    ]
    got = EvidenceMatcher(tax, pool).candidates(Product("x", "Kors Pump, Black Patent"), tax.categories["shoes"])
    # The dictionary's entry, with its source: the common colour's part is the same value, not a rival.
    assert [(e.value, e.matched) for e in got["color"]] == [("Black Patent", "dictionary")]
    black_patent: Evidence = got["color"][0]
    assert black_patent.source == "pool"
