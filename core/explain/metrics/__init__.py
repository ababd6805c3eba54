"""How far explanation maps can be trusted: hiding pixels, faithfulness, localisation, the evaluation."""
