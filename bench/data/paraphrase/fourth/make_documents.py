"""Writes the PDF (fpdf2) and the OpenDocument report (odfpy) of the fourth paraphrase set into corpus/.

    python bench/data/paraphrase/fourth/make_documents.py

The HTML article in corpus/ is written by hand.
"""

from pathlib import Path

from fpdf import FPDF
from odf.opendocument import OpenDocumentText
from odf.style import Style, TextProperties
from odf.text import H, P

CORPUS = Path(__file__).resolve().parent / "corpus"

SEED_TITLE = "Harwick Community Seed Library: Annual Report 2025"
SEED_PAGES = [
    ("Foreword from the chair", [
        "The Harwick Community Seed Library lends seeds free of charge to anyone living in the borough. "
        "Members borrow seeds in spring, grow the plants, and bring back a share of the seed they save in "
        "autumn, so that the collection renews itself every year.",
        "This year 1,140 households borrowed seeds, up from 860 in 2024. Much of the growth came after a "
        "stall at the Harwick spring fair and a piece on the local radio station.",
        "The library was founded in 2016 by the retired botanist Dr Imogen Achterberg in a cupboard of "
        "the Harwick Central Library. It outgrew the cupboard within three years and now occupies a "
        "converted shipping container beside the allotments on Mill Lane, lent to us by the allotment "
        "association.",
        "I want to thank every member who grew, saved and returned seed this year, and the volunteers "
        "who gave up their Saturdays to sort envelopes. - Ruth Okafor, Chair",
    ]),
    ("The collection", [
        "The collection now holds 412 varieties, of which 96 are local heritage varieties that are not "
        "sold commercially. Most of these came from the sheds of older gardeners in the borough, some "
        "of them kept in the same families for more than fifty years.",
        "The most borrowed seed was the Harwick Red runner bean, taken by 310 members. Tomatoes, lettuce "
        "and squash followed; interest in flowers for pollinators doubled.",
        "Seeds are stored in paper envelopes in a cool room kept between 5 and 10 degrees Celsius. "
        "Germination is tested on a sample of every batch, and batches in which fewer than 70 percent "
        "of the seeds sprout are not lent to members.",
        "In March a leak in the container roof soaked the shelves of beans and peas and damaged "
        "38 varieties. Thanks to members' saved seed, 31 of them were recovered by the autumn.",
        "Members returned seed from 58 percent of the packets they borrowed, the highest share so far. "
        "Returned seed is checked for mould and labelled with the grower's name and street, so that "
        "varieties can be traced back to the garden where they were grown.",
    ]),
    ("Money and the year ahead", [
        "Income for the year was £14,600: £9,000 from a Borough Council grant, £3,900 from plant sales "
        "at the May fair, and the rest from donations. The largest single cost was electricity for the "
        "cool room, £2,300, followed by envelopes and printing.",
        "Volunteers gave about 2,100 hours over the year, most of them in the sorting sessions of "
        "September and October.",
        "In 2026 the library will open a second branch at Eastfield School, run with the school's "
        "gardening club. We will also start evening classes on saving tomato seed, led by the volunteer "
        "Tomasz Wierzbicki.",
        "The annual general meeting will be held on 14 February 2026 in the container on Mill Lane. "
        "All members are welcome, and there will be soup.",
        "Anyone who would like to help sort seed, run a stall or test germination can sign up at the "
        "container on any Saturday morning between March and October, or leave a note in the box by "
        "the door. No gardening experience is needed, only patience with small envelopes.",
    ]),
]

MARSH_TITLE = "Caddon Marsh restoration: third-year monitoring report"
MARSH_SECTIONS = [
    ("Summary", [
        "In 2022 the Tarn Estuary Trust breached the sea wall at Caddon to let the tide back onto "
        "86 hectares of former grazing land. This report covers the third year of monitoring, from "
        "April 2024 to March 2025.",
        "Fieldwork was led by Dr Priya Raman, with volunteers from the Caddon Bird Club carrying out "
        "the monthly bird counts.",
    ]),
    ("Methods", [
        "Sediment was measured every three months at 30 marker posts set out on a grid across the site. "
        "Plant cover was recorded in August in one-metre squares along six transects running from the "
        "new sea wall to the main creek. Birds were counted on the highest tide of each month from the "
        "two hides, and fish were sampled with fyke nets left in the creeks over one tide.",
        "Water quality samples were taken at the breach each month and sent to the trust's laboratory "
        "in Tarnmouth for salinity and nutrient tests.",
    ]),
    ("Sediment", [
        "Mud is building up faster than expected. The marsh surface rose by an average of "
        "19 millimetres a year, against 8 millimetres forecast in the design. The fastest build-up was "
        "along the new creek cut near Holm Farm, where the tide slows as it spreads out.",
    ]),
    ("Vegetation", [
        "Saltmarsh plants now cover 41 percent of the site, up from 12 percent after the first year. "
        "Common glasswort was the first to arrive, followed by sea purslane along the creek edges. "
        "Sea lavender appeared for the first time in August 2024.",
        "Invasive common cordgrass was found on 2 hectares in the north-east corner and is being pulled "
        "up by hand before it can spread.",
    ]),
    ("Birds", [
        "Winter counts found up to 5,200 wading birds at high tide, most of them dunlin and redshank. "
        "Avocets nested on the site for the first time and raised 14 chicks.",
        "Disturbance by dogs remains the main threat to the birds. A seasonal closure of the lower path "
        "from October to February was agreed with the parish council in 2024.",
    ]),
    ("Fish", [
        "Fyke-net surveys in the creeks caught juvenile bass, a species that uses salt marshes as "
        "nurseries. The largest catch, 63 young bass, came in September, along with smaller numbers of "
        "flounder and grey mullet.",
    ]),
    ("Costs", [
        "The breach and the new sea wall behind it cost £4.7 million, paid mostly by the Environment "
        "Agency as flood defence, since the new wall protects the village of Caddon St Mary from storm "
        "surges. Monitoring costs about £38,000 a year.",
    ]),
    ("Problems and next steps", [
        "A section of the old wall that had been kept as a bird hide collapsed in a storm in January "
        "2025. It will not be rebuilt; a new hide on the landward side is planned instead.",
        "Monitoring will continue until 2032. The trust will decide in 2026 whether to breach a second "
        "wall, at Fenny Point, which would add a further 40 hectares.",
    ]),
    ("Acknowledgements", [
        "The trust thanks the landowners at Holm Farm for access across their fields, the Caddon Bird "
        "Club for more than 600 hours of counting, and the pupils of Caddon St Mary primary school who "
        "helped plant the upper marsh edge with sea aster.",
    ]),
]


def write_seed_report() -> None:
    pdf = FPDF()
    pdf.set_title(SEED_TITLE)
    for number, (heading, paragraphs) in enumerate(SEED_PAGES):
        pdf.add_page()
        if number == 0:
            pdf.set_font("helvetica", "B", 15)
            pdf.multi_cell(0, 9, SEED_TITLE)
            pdf.ln(3)
        pdf.set_font("helvetica", "B", 12)
        pdf.multi_cell(0, 8, heading)
        pdf.set_font("helvetica", size=11)
        for paragraph in paragraphs:
            pdf.ln(2)
            pdf.multi_cell(0, 6, paragraph)
    pdf.output(str(CORPUS / "harwick-seed-library.pdf"))


def write_marsh_report() -> None:
    document = OpenDocumentText()
    bold = Style(name="Heading", family="paragraph")
    bold.addElement(TextProperties(fontweight="bold"))
    document.styles.addElement(bold)
    document.text.addElement(H(outlinelevel=1, stylename=bold, text=MARSH_TITLE))
    for heading, paragraphs in MARSH_SECTIONS:
        document.text.addElement(H(outlinelevel=2, stylename=bold, text=heading))
        for paragraph in paragraphs:
            document.text.addElement(P(text=paragraph))
    document.save(str(CORPUS / "caddon-marsh-report.odt"))


if __name__ == "__main__":
    write_seed_report()
    write_marsh_report()
