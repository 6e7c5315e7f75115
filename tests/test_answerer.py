"""The extractive answerer on real indexes: right evidence, honest refusals, verified quotes."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from rag import answer, build_index, stream_answer
import rag.answering
from rag.answering import resolve_follow_up
from rag.answering.compose import choose
from rag.answering.evidence import Evidence
from rag.config import Settings
from rag.embedding import Embedder, embedder_for
from rag.retriever import get_retriever
from rag.types import Answer

from tests.conftest import DEFAULT_CORPUS, SCIFACT_SAMPLE, SEED_QUESTIONS, write_pdf

SEED = SEED_QUESTIONS
SCIFACT = SCIFACT_SAMPLE


def assert_well_formed(result: Answer, index: Path) -> None:
    """Every quote is its document's text at its offsets; markers and citations match one to one."""
    retriever = get_retriever(index, Settings())
    for citation in result.citations:
        document = retriever.document(citation.doc_id)
        assert document.text[citation.start : citation.end] == citation.quote
        assert citation.page == document.page_at(citation.start)
        assert f'"{citation.quote}"' in result.text
    first_use = list(dict.fromkeys(int(n) for n in re.findall(r"\[(\d+)\]", result.text)))
    assert first_use == [c.number for c in result.citations] == list(range(1, len(result.citations) + 1))
    if not result.found:
        assert result.citations == [] and "does not contain" in result.text


@pytest.fixture(scope="session")
def scifact_index(tmp_path_factory) -> tuple[Path, list[tuple[str, set[str]]]]:
    """A few dozen SciFact abstracts: those cited by 20 claims, and 20 others."""
    queries = {q["_id"]: q for q in map(json.loads, (SCIFACT / "queries.jsonl").open())}
    relevant: dict[str, set[str]] = {}
    for line in (SCIFACT / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        relevant.setdefault(query_id, set()).add(doc_id)
    claims = random.Random(1).sample([q for q in relevant if queries[q]["metadata"]], 20)
    wanted = {d for q in claims for d in relevant[q]}
    documents = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open()]
    wanted |= set(random.Random(2).sample([d["_id"] for d in documents if d["_id"] not in wanted], 20))
    corpus = tmp_path_factory.mktemp("scifact-corpus")
    for document in documents:
        if document["_id"] in wanted:
            (corpus / f"{document['_id']}.md").write_text(f"# {document['title']}\n\n{document['text']}\n")
    index = tmp_path_factory.mktemp("scifact-index")
    build_index(corpus, index)
    return index, [(queries[q]["text"], {f"{d}.md" for d in relevant[q]}) for q in claims]


# ---------------------------------------------------------------- seed questions


@pytest.mark.parametrize("item", SEED, ids=[q["question"][:40] for q in SEED])
def test_seed_question(item, default_index):
    result = answer(item["question"], index_dir=default_index)
    assert_well_formed(result, default_index)
    if item["answerable"]:
        assert result.found, result.text
        quotes = [c.quote for c in result.citations]
        assert any(e in q for e in item["evidence"] for q in quotes), (item["evidence"], quotes)
        assert 1 <= len(result.citations) <= Settings().answer_sentences
    else:
        assert not result.found and result.citations == []


def test_answer_reads_as_an_answer_quoting_whole_sentences(default_index):
    result = answer("Which anti-aircraft system does the Colombian army use?", index_dir=default_index)
    assert result.text.startswith("According to *")
    quote = result.citations[0].quote
    assert quote[0].isupper() and quote.endswith(".")
    assert re.search(r'"[^"]+" \[1\]', result.text)


def test_off_topic_refusal_is_plain_and_offers_nothing(default_index):
    result = answer("What is the tallest mountain in Europe?", index_dir=default_index)
    assert not result.found and result.citations == [] and result.related == []
    assert result.text == "The corpus does not contain the answer to this question."


def test_on_topic_refusal_offers_possibly_related_passages(default_index):
    result = answer("How much coal did Colombia sell to Israel in 2023?", index_dir=default_index)
    assert not result.found and result.citations == []
    assert result.related and all(p.doc_id == "colombia-israel-ties.txt" for p in result.related)
    assert "Possibly related, though not an answer" in result.text and '"' not in result.text


@pytest.mark.parametrize("question, evidence", [
    ("When did Columbia recall its embassador?", "on the first of November"),
    ("What weapons does Colombia's army get from Israel?", "Galil and Tavor"),
])
def test_paraphrases_and_typos_are_answered(question, evidence, default_index):
    result = answer(question, index_dir=default_index)
    assert result.found, result.text
    assert any(evidence in c.quote for c in result.citations), result.text
    assert_well_formed(result, default_index)


def evidence(text: str, score: float, covered: set[str], has_type=None) -> Evidence:
    return Evidence("d.txt", "D", 0, len(text), text, score, score, 0.5, frozenset(covered), has_type, 0)


def test_best_evidence_leads_and_a_further_quote_must_add_support():
    best = evidence("Hoffmann's instrument had 37 glasses.", 1.0, {"hoffmann", "instrument", "glass"})
    filler = evidence("Hoffmann's instrument was admired.", 0.95, {"hoffmann", "instrument"})
    adds = evidence("The glasses were tuned by the maker in Leipzig.", 0.9, {"glass", "tune"})
    typed = evidence("It was played in 1784.", 0.9, set(), has_type=True)
    assert choose([best, filler, adds], 3) == [best, adds]  # the filler adds no question term
    assert choose([best, filler], 3) == [best]
    assert choose([best, adds], 1) == [best]
    untyped = evidence("Hoffmann built an instrument of glasses.", 1.0, {"hoffmann", "glass"}, has_type=False)
    assert choose([untyped, typed], 3) == [untyped, typed]
    closer = Evidence("d.txt", "D", 50, 90, "The glass harmonica sang.", 0.9, 1.2, 0.1, frozenset(), None, 0)
    assert choose([best, closer], 3) == [best, closer]  # closer in meaning, though no shared term
    asks = evidence("But why did Hoffmann tune the glasses?", 0.95, {"tune"})
    assert choose([best, asks, adds], 3) == [best, adds]  # a question of the text's own answers nothing


def test_stream_answer_yields_the_text_then_the_answer(default_index):
    *deltas, result = stream_answer("Who is Yair Klein?", index_dir=default_index)
    assert isinstance(result, Answer) and "".join(deltas) == result.text


def test_no_endpoint_configured_means_no_network(default_index, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the extractive engine must not open connections")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    assert answer("Who is Yair Klein?", index_dir=default_index).found


def test_answering_embeds_no_sentence_the_index_holds(default_index, monkeypatch):
    def no_model_call(self, texts, **kwargs):
        raise AssertionError(f"sentences embedded at question time: {texts}")

    monkeypatch.setattr(Embedder, "embed_documents", no_model_call)
    result = answer("Which anti-aircraft system does the Colombian army use? (stored)", index_dir=default_index)
    assert result.found and "Nimrod" in result.citations[0].quote


def test_an_index_without_sentence_vectors_still_answers(tmp_path, monkeypatch):
    """Indexes built before sentence vectors were stored: sentences are embedded when asked."""
    embedder = embedder_for(Settings())
    monkeypatch.setattr(embedder, "pools_spans", False)
    build_index(DEFAULT_CORPUS, tmp_path / "index")
    monkeypatch.undo()
    embedded: list[str] = []
    original = Embedder.embed_documents
    monkeypatch.setattr(Embedder, "embed_documents",
                        lambda self, texts, **kw: embedded.extend(texts) or original(self, texts, **kw))
    result = answer("Which anti-aircraft system does the Colombian army use?", index_dir=tmp_path / "index")
    assert result.found and "Nimrod" in result.citations[0].quote
    assert any("Nimrod" in text for text in embedded)
    assert_well_formed(result, tmp_path / "index")


# ---------------------------------------------------------------- follow-ups


def test_follow_up_is_answered_about_the_earlier_subject(default_index):
    first = answer("Who is Yair Klein?", index_dir=default_index)
    follow_up = "When did he arrive in Colombia?"
    result = answer(follow_up, index_dir=default_index, history=[("Who is Yair Klein?", first.text)])
    assert result.found
    assert any("Klein arrived in Colombia" in c.quote for c in result.citations), result.text
    assert_well_formed(result, default_index)


def test_resolve_follow_up_adds_the_subject_only_to_questions_that_point_back():
    history = [("Who is Yair Klein?", "…")]
    assert resolve_follow_up("and when did that happen?", history).text == "and when did that happen? (Yair Klein)"
    standalone = "When did Colombia sign major trade agreements with Israel?"
    assert resolve_follow_up(standalone, history).text == standalone
    assert resolve_follow_up("Photosynthesis?", history).text == "Photosynthesis?"
    assert not resolve_follow_up("Where did he go?", []).follow_up
    chain = history + [("When did he arrive in Colombia?", "…")]
    assert "Yair Klein" in resolve_follow_up("Why did he do it?", chain).text


@pytest.mark.parametrize("follow_up", ["What about penguins?", "Photosynthesis?", "Tell me about herons",
                                       "And what about his favourite ice cream flavour?"])
def test_a_follow_up_on_a_new_subject_does_not_inherit_the_answer(follow_up, default_index):
    history = [("Who is Yair Klein?", answer("Who is Yair Klein?", index_dir=default_index).text)]
    result = answer(follow_up, index_dir=default_index, history=history)
    assert not result.found and result.citations == [], result.text


def test_a_very_long_conversation_is_capped_and_never_recurses(default_index):
    history = [("Who is Yair Klein?", "…"), ("and then?", "…")] * 1_000
    result = answer("When did he arrive in Colombia?", index_dir=default_index, history=history)
    assert result.found and any("Klein arrived in Colombia" in c.quote for c in result.citations)


# ---------------------------------------------------------------- one index version per answer


def test_an_answer_reads_the_version_it_started_with(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    article = corpus / "lighthouse.md"
    article.write_text("# Lighthouse\n\nThe keeper Marguerite Olsen lit the lamp every evening at seven o'clock.\n")
    index = tmp_path / "index"
    build_index(corpus, index)
    ranking = rag.answering.rank_evidence

    def rebuild_meanwhile(*args, **kwargs):
        article.write_text("# Lighthouse\n\nThe lamp is electric now and nobody lights it by hand.\n")
        build_index(corpus, index)
        return ranking(*args, **kwargs)

    monkeypatch.setattr(rag.answering, "rank_evidence", rebuild_meanwhile)
    result = answer("When did Marguerite Olsen light the lamp?", index_dir=index)
    assert result.found and "seven o'clock" in result.citations[0].quote, result.text
    monkeypatch.undo()
    assert "electric" in get_retriever(index, Settings()).document("lighthouse.md").text


def test_a_quotation_mark_in_a_title_does_not_turn_answers_into_refusals(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harbour.md").write_text(
        '# The "Quiet" Harbour\n\nThe harbour of Port Elsin was built from granite blocks in 1820.\n')
    build_index(corpus, tmp_path / "index")
    result = answer("What was the harbour of Port Elsin built from?", index_dir=tmp_path / "index")
    assert result.found and "granite" in result.citations[0].quote, result.text
    assert_well_formed(result, tmp_path / "index")


# ---------------------------------------------------------------- PDF pages


def test_pdf_citation_carries_its_page(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_pdf(corpus / "harbour.pdf", [
        "The harbour of Port Elsin was built from granite blocks in the early years of the town.",
        "The lighthouse keeper Marguerite Olsen lit the lamp every evening at seven o'clock.",
        "Fishing boats return to the harbour before the winter storms arrive in November.",
    ], title="Port Elsin")
    index = tmp_path / "index"
    build_index(corpus, index)
    result = answer("When did Marguerite Olsen light the lamp?", index_dir=index)
    assert result.found
    assert result.citations[0].page == 2 and "Marguerite Olsen" in result.citations[0].quote
    assert_well_formed(result, index)


# ---------------------------------------------------------------- properties over many questions


def test_scifact_claims_cite_their_abstracts(scifact_index):
    index, claims = scifact_index
    cited_relevant = 0
    for claim, relevant in claims:
        result = answer(claim, index_dir=index)
        assert_well_formed(result, index)
        cited_relevant += result.found and result.citations[0].doc_id in relevant
    assert cited_relevant >= 0.7 * len(claims)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.one_of(
    st.sampled_from([q["question"] for q in SEED]).map(lambda q: q.replace("When", "Since when")),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80),
    st.lists(st.sampled_from("Colombia Israel Petro coal 1988 army party who when [1] \" the".split()),
             min_size=1, max_size=8).map(" ".join),
).filter(lambda q: q.strip()))
def test_any_question_gets_a_well_formed_answer(question, default_index):
    assert_well_formed(answer(question, index_dir=default_index), default_index)
