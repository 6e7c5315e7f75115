"""Writes corpus/kestrel-water-report.pdf (fpdf2), the PDF of the paraphrase set.

    python bench/data/paraphrase/make_pdf.py
"""

from pathlib import Path

from fpdf import FPDF

PAGES = [
    "Kestrel Valley Water Cooperative. Annual Report 2024.\n\nThe cooperative supplies drinking water to 14 villages and about 19,000 people in the upper Kestrel valley. It was founded in 1987 by the farmers of Ashby Moor, who dug the first borehole themselves after two summers of drought.\n\nIn 2024 the cooperative pumped 1.3 million cubic metres of water, four percent more than the year before. Leakage from the old cast-iron mains fell to 17 percent, down from 26 percent in 2020, after 31 kilometres of pipe were replaced with polyethylene.",
    "Finances.\n\nMembers pay a standing charge of 12 pounds a quarter and 1.90 pounds for each cubic metre they use. Revenue for the year was 2.6 million pounds. The largest single cost was electricity for the pumps, at 610,000 pounds, which is why the board approved a solar farm beside the treatment works; it is due to be finished in the spring of 2026.\n\nWater quality.\n\nThe laboratory in Millbrook tested 4,212 samples during the year. All but three met the national standard; the three failures were traced to a cracked reservoir cover at Hobb's Cross, which was repaired within a week.",
    "People.\n\nThe cooperative employs 23 staff. Its chair since 2019 is the retired hydrologist Margaret Okafor, and its chief engineer is Tom Pellow, who joined as an apprentice in 1994.\n\nOutlook.\n\nThe board expects demand to rise as 400 new homes are built at Fenwick. A second borehole at Ashby Moor will be drilled in 2025 to meet it.",
]

if __name__ == "__main__":
    pdf = FPDF()
    pdf.set_title("Kestrel Valley Water Cooperative: Annual Report 2024")
    pdf.set_font("helvetica", size=11)
    for text in PAGES:
        pdf.add_page()
        pdf.multi_cell(0, 7, text)
    pdf.output(str(Path(__file__).resolve().parent / "corpus" / "kestrel-water-report.pdf"))
