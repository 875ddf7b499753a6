"""Streamlit dashboard pages (arriving with the dashboard issue)."""
