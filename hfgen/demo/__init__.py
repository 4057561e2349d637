"""`hfgen demo` (a Gradio app for trained folders) and `hfgen space` (a Space-ready folder).

The tabs' actions are plain Python (`hfgen.demo.common` and one module per kind of folder); `hfgen.demo.app` builds
the Gradio page from them; `hfgen.demo.space` writes a folder that runs it on a Hugging Face Space. Gradio is the
optional extra ``hfgen[demo]``: only `hfgen.demo.app` imports it.
"""
