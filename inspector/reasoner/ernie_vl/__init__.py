"""ERNIE-4.5-VL for llama.cpp (issue 27, in progress): reading the reference checkpoint, a tiny
random-weight checkpoint in the same layout for the tests, and (to come) the GGUF converter.
The plan is docs/ernie-vl-in-llama-cpp.md."""
