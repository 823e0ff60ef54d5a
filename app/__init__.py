"""The Streamlit dashboard: `streamlit run app/main.py`."""
