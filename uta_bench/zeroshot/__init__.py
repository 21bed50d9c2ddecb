"""Zero-shot classification and retrieval (Tables 1 and 2), one task card at a time.

``run`` (entry points ``run_zeroshot`` / ``evaluate_loaded``) -> ``tasks`` (one card: data ->
image ``features`` -> ``classifier`` built from ``prompts`` with ``text`` encoding, or caption
features for ``retrieval``) -> metrics (``classification``, ``retrieval``) -> the results store.
"""
