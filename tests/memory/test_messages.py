"""String literals as message templates, and queries read as pasted error messages."""

from __future__ import annotations

from api.memory.messages import best_match, match_score, parse_message, template_text, templates, words

CODE = '''
def lookup(name):
    """Find a codec by name."""
    if name not in CODECS:
        raise LookupError(f"unknown encoding {name!r}")
    raise OSError(_("cannot open {path!r}: {reason}").format(path=p, reason=r))
    log.warning("retrying %s after %.1f s (%(attempt)d)", url, delay)
    message = ("Boolean option {decl!r} cannot use the"
               " same flag for true/false.")
    literal = f"{{braces}} stay {value}"
    return "ok"
'''


def test_literals_become_templates_with_placeholders() -> None:
    found = templates(CODE)
    assert ["unknown", "encod", "*"] in found
    assert ["cannot", "open", "*", "*"] in found
    assert ["retry", "*", "after", "*", "s", "*"] in found
    assert words("Boolean option * cannot use the same flag for true/false.") in found  # implicit concatenation
    assert words("braces stay *") in found  # {{ }} are literal braces, not a field
    assert ["find", "a", "codec", "by", "name"] in found  # a docstring is a literal too
    assert all(len([w for w in t if w != "*"]) >= 2 for t in found)  # "ok" is no message


def test_fragments_that_do_not_tokenize_keep_what_was_read() -> None:
    assert template_text('x = "first message here"\ny = """never closed') == " ".join(words("first message here"))
    assert template_text("") == ""
    assert template_text("def f(:\n  'broken syntax still has words'").split() == words("broken syntax still has words")


def test_error_prefixes_quotes_and_tracebacks() -> None:
    m = parse_message("Error: Invalid value for '--count': 'abc' is not a valid integer.")
    assert m is not None and m.exception == "Error"
    assert m.words == ["invalid", "valu", "for", "*", "*", "is", "not", "a", "valid", "integer"]
    assert "abc" not in m.text and "count" not in m.text  # the user's values stay out of the lexical query
    m = parse_message("httpx.InvalidURL: Invalid port: '80a'")
    assert m is not None and m.exception == "InvalidURL" and m.words == ["invalid", "port", "*"]
    m = parse_message("Traceback (most recent call last):\n  File 'x.py', line 3\nValueError: Unknown color 'purple'")
    assert m is not None and m.exception == "ValueError" and m.words == ["unknown", "color", "*"]
    m = parse_message("unknown encoding 'latin-9' while reading data.csv at line 42")
    assert m is not None and m.exception is None and "*" in m.words  # no prefix, but a quoted value
    assert parse_message("Couldn't detect Bash version") is None  # an apostrophe is not a quote
    assert parse_message("how are retries handled") is None
    assert parse_message("ValueError: 'x'") is None  # nothing but a value: no message to match
    assert parse_message("Note: a plain sentence") is None


def test_order_and_coverage_decide_the_match() -> None:
    message = parse_message("ValueError: 'foo' is not a valid option")
    assert message is not None
    exact = match_score(words("* is not a valid option"), message.words)
    shuffled = match_score(words("option valid a not is *"), message.words)
    partial = match_score(words("the valid option list, pick one of them"), message.words)
    assert exact > shuffled > partial > 0
    assert match_score(["*", "*"], message.words) == 0.0
    assert best_match("nothing in common here\n* is not a valid option", message.words) == exact
