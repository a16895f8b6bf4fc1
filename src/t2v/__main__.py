from t2v.cli import entry

entry()
