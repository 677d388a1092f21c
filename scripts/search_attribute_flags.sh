#!/usr/bin/env bash
# Print the `temporal server start-dev` flags that register the CodingTask search attributes, e.g.
#   temporal server start-dev $(scripts/search_attribute_flags.sh)
# Keep in step with SEARCH_ATTRIBUTES in workflows/models.py (tests/test_search_attributes.py checks).
echo "--search-attribute TaskStatus=Keyword --search-attribute Agent=Keyword" \
  "--search-attribute CodeModel=Keyword --search-attribute DocModel=Keyword" \
  "--search-attribute LintScore=Double --search-attribute FeedbackRating=Int" \
  "--search-attribute TotalTokens=Int --search-attribute Owner=Keyword"
