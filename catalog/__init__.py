"""The guide's model catalog, the Hugging Face client, and the local model library."""
