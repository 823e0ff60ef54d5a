"""Dashboard pages: each file is an `st.Page` script and a module exposing `render()`."""
