"""Settings are checked where they are made, so a bad value fails at start with its variable."""

import pytest

from rag.config import Settings, load_settings


@pytest.mark.parametrize("name, value", [
    ("chunk_tokens", 0), ("batch_size", -1), ("top_k", 0), ("answer_sentences", 0),
    ("max_file_mb", 0.0), ("max_upload_files", 0), ("max_upload_mb", -5.0),
    ("parse_timeout_s", 0.0), ("parse_memory_mb", 0), ("llm_timeout", -1.0),
])
def test_sizes_counts_and_time_limits_must_be_positive(name, value):
    with pytest.raises(ValueError, match=f"{name} must be more than 0, got {value} \\(RAG_{name.upper()}\\)"):
        Settings(**{name: value})


@pytest.mark.parametrize("name", ["dense_weight", "min_relevance", "related_min_relevance"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_probabilities_and_weights_stay_between_0_and_1(name, value):
    with pytest.raises(ValueError, match=f"{name} must be between 0 and 1"):
        Settings(**{name: value})
    assert getattr(Settings(**{name: 0.0}), name) == 0.0 and getattr(Settings(**{name: 1.0}), name) == 1.0


def test_an_environment_value_out_of_range_names_its_variable(monkeypatch):
    monkeypatch.setenv("RAG_MIN_RELEVANCE", "2")
    with pytest.raises(ValueError, match=r"RAG_MIN_RELEVANCE"):
        load_settings()
    monkeypatch.setenv("RAG_MIN_RELEVANCE", "0.7")
    assert load_settings().min_relevance == 0.7


def test_chunk_overlap_may_be_zero_but_not_negative():
    assert Settings(chunk_overlap_sentences=0).chunk_overlap_sentences == 0
    with pytest.raises(ValueError, match="chunk_overlap_sentences must be 0 or more"):
        Settings(chunk_overlap_sentences=-1)


@pytest.mark.parametrize("url", ["ftp://host/v1", "file:///etc", "127.0.0.1:8080/v1", "http://"])
def test_a_language_model_address_must_be_http_or_https(url):
    with pytest.raises(ValueError, match=r"llm_base_url must be an http:// or https:// address.*RAG_LLM_BASE_URL"):
        Settings(llm_base_url=url)
    assert Settings(llm_base_url="https://api.example.com/v1").llm_base_url == "https://api.example.com/v1"
