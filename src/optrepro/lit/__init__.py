"""Lightning glue: the classifier module and the backend that lets step strategies run inside it."""
