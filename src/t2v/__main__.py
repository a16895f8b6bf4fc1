from t2v.cli import main

main()
