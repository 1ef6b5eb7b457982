"""`python eval.py …` runs tools/eval.py (examples in its docstring): matting metrics and protocols."""
from tools.eval import main
main()
